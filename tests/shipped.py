"""The provenance record a test writes beside an artifact: the fields every shipped record has
(:func:`backdoorbook.artifacts.save_artifact` needs them), plus the test's own."""


def shipped_record(**fields) -> dict:
    """A record made by "test" on the CPU in no time from no data, with ``fields`` added."""
    return {"command": "test", "data_checksums": {}, "wall_time_s": 0.0, "device": "cpu"} | fields
