"""The sheets of report.xlsx, one module per group of sheets (:mod:`cea.report.workbook`
builds the workbook from them).

==================  =====================================================================
``cells``           cell writers, styles, number formats, defined names, sheet names
``state``           the writer's shared state: the workbook, where each sheet put what,
                    the layout of the cycles, per_state and trace sheets
``settings``        settings
``inputs``          inputs, prices, strategies
``cycles``          life_table, cycles
``per_state``       per_state
``trace``           trace_<strategy>
``results``         results, incremental, comparisons
``checks``          checks, verification
``analyses``        dsa, psa_*, regional (optional)
``about``           about
==================  =====================================================================

Each sheet module imports ``cells`` and ``state`` (and nothing from ``cea.report.workbook``);
its ``write_<sheet>(rs)`` functions take the :class:`~cea.report.sheets.state.ReportState`.
"""
