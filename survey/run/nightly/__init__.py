"""The nightly batch survey: a TOML config of models, planned into per-model tasks, run locally
or on Ray, each attempt recorded in ``nightly_jobs`` so a rerun skips, retries and reports."""
