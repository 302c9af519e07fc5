from powerflex_etl.cli import main

main()
