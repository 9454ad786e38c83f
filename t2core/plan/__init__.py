"""What a run needs before it starts (issue 35): the model's shapes without its weights (`shape`), the
memory, disk and time of each kind of stage (`footprint`), the token lengths of a task's prompts
(`lengths`), and the devices a plan is checked against (`devices`). Pure: no prefect, no duckdb, no weights."""
