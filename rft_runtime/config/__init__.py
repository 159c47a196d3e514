"""The contract between the operator and the pods, and nothing else: the spec sections the
jobs read (`spec`, `filter_spec`), job configs and summaries (`jobs`), paths (`paths`),
metric and summary keys (`keys`), environment names (`env`) and the termination message
(`termination`). Both sides import these; neither spells one of them again."""
