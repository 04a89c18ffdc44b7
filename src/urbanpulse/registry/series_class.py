"""The class a stored series' readings have, as SQL (no imports: the live feed, which a service loads before
its first batch, uses it without the registry's models or store).

Why one expression: the open-data scope of the history routes (``registry.select``) and of the live page
(``live.feed``) must agree on which series are open, and a series is as strict as the stricter of its
sensor's registry class and the class its readings were stored in (newcomer44: a registered ``open``
sensor's readings from a source classed ``restricted`` were served without a key).
"""

#: the class of a stored series ``s`` whose current registry row is ``h``: the stricter of the
#: sensor's registry class and the class its readings were stored in (``series.data_class``, set
#: by the privacy stage from the topic or source), as the ``series_classes`` view has it; NULL for
#: a sensor the registry does not know (never in the open-data scope). The same CASE as the
#: ``series_classes`` view (privacy/schema.py's migration), which says 'open' for such a sensor.
SERIES_CLASS_CASE = """(CASE WHEN h.sensor_id IS NULL THEN NULL
      WHEN 'personal' IN (h.data_class, s.data_class) THEN 'personal'
      WHEN 'restricted' IN (h.data_class, s.data_class) THEN 'restricted'
      ELSE 'open' END)"""
