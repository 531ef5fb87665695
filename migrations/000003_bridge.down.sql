DROP TABLE IF EXISTS bridge_outbox, bridge_decisions, bridge_workload_cpus, bridge_workload_cells,
    bridge_workloads, bridge_host_cpus, bridge_host_cells, bridge_hosts;
