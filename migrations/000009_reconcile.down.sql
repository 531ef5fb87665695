DROP TABLE IF EXISTS bridge_reconcile_divergences;
DROP TABLE IF EXISTS bridge_reconcile_runs;
