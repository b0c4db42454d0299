"""The stage functions: one file per pipeline stage, shared by the CLI, KFP and tests."""
