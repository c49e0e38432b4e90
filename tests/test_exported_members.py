"""The public API is exactly what __all__ says, sorted, and all of it importable."""

import eventor


def test_all_is_sorted_and_complete():
    assert eventor.__all__ == sorted(eventor.__all__)
    for name in eventor.__all__:
        assert getattr(eventor, name) is not None


def test_public_names_are_pinned():
    assert set(eventor.__all__) == {
        "Clock", "Config", "Event", "Eventor", "EventorConfigError", "EventorError",
        "EventorUsageError", "Flow", "FlowDefinitionError", "FlowGraph", "HostError", "MockClock",
        "NotAStoreError", "NotSupportedError", "ParameterError", "ProcessDied", "RUN_CONTINUE",
        "RUN_RECOVER", "RUN_RESTART", "RecoveryPlan", "Resource", "ResourceDeadlock",
        "ResourcePool", "ResultNotStoredError", "RunClaimedError", "RunMode", "RunNotFoundError", "RunResult",
        "RunSummary", "STEP_ACTIVE", "STEP_COMPLETE", "STEP_FAILURE", "STEP_READY", "STEP_RERUN",
        "STEP_SKIP", "STEP_SUCCESS", "Schedule", "SchemaVersionError", "StepContext", "StepFailure",
        "StepReplay", "StepStatus", "StepTimeout", "StoreError", "StoreIntegrityError",
        "StoreURLError", "StoreUnavailableError", "SystemClock", "TaskResult", "flow", "join",
        "load_config", "or_", "purge", "step", "task_env",
    }


def test_every_error_derives_from_eventor_error():
    errors = [getattr(eventor, n) for n in eventor.__all__ if n.endswith("Error")]
    assert all(issubclass(e, eventor.EventorError) for e in errors)


def test_submodules_are_reachable_through_the_package_as_before():
    import importlib

    fresh = importlib.import_module("eventor")
    assert fresh.exceptions.EventorError is eventor.EventorError
    assert fresh.store.open_store is not None
