from powerflex_etl.cli.app import main

main()
