"""Pure: an InfluxDB answer (bytes) -> typed columns and bad rows -> the lake table and rejects.

``answer`` decodes the envelope, ``series`` one series (fast CSV path, typed path), ``rows``
the per-row path for rows the typed one cannot take, ``times`` the time cells; ``parsed``
declares what they hand over (:class:`~.parsed.ParsedAnswer`, :class:`~.parsed.BadRow`),
and ``normalize`` applies CONTRACT §2 to it. No I/O, and no import of the API or the lake.
"""
