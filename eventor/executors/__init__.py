"""
Executors run tasks: ``process`` (the default) in forked worker processes, ``thread`` on a
pool of threads, ``invoke`` in the engine itself. Each is a subclass of
`eventor.executors.base.Executor`; `eventor.executors.registry` names them for the engine.

Importing this package imports no executor: each module is loaded where it is used.
"""
