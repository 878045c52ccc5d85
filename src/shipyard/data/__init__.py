"""Data: ingest, validate, clean, profile, version and diff datasets (DESIGN.md section 3)."""

from shipyard.data.diff import DatasetDiff, diff_versions
from shipyard.data.ingest import IngestResult, blocking_failure, ingest, ingest_spec, validate_file
from shipyard.data.sources import Source, open_source
from shipyard.data.versions import (
    get_dataset,
    get_version,
    get_version_by_id,
    list_datasets,
    list_versions,
    read_pandas,
    read_table,
)

__all__ = [
    "DatasetDiff",
    "IngestResult",
    "Source",
    "blocking_failure",
    "diff_versions",
    "get_dataset",
    "get_version",
    "get_version_by_id",
    "ingest",
    "ingest_spec",
    "list_datasets",
    "list_versions",
    "open_source",
    "read_pandas",
    "read_table",
    "validate_file",
]
