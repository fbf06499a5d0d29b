"""What people look at: figures, the posterior widget, the notebook runner, the index (floor 6).

Imports every folder below it and the foundations; writes ``reports/`` (the project's outputs
folder of that name). Modules, bottom-up:

    * :mod:`zoolib.reports.plots` - the notebooks' figures
    * :mod:`zoolib.reports.widgets` - the GalaxyExplorer posterior widget
    * :mod:`zoolib.reports.index_page` - the reports' index page: key figures, parameters, metrics
    * :mod:`zoolib.reports.preflight` - a run's parameter values checked before any notebook runs
    * :mod:`zoolib.reports.runner` - runs the numbered notebooks with papermill into reports
"""
