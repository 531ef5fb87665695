#!/usr/bin/python3
"""Runs nova-compute from python3-nova on Nova's fake virt driver, sized by the harness.

Debian's nova-compute package needs a hypervisor (libvirt, qemu ...), so the
harness runs ``nova.cmd.compute.main()`` itself:

    /usr/bin/python3 fake_compute.py --config-file compute-N.conf --log-file ...

with ``[DEFAULT] compute_driver`` naming the driver (fake.FakeDriver). Nova's
fake drivers hard-code their size as class attributes and report no NUMA
topology and no PCPU; these environment variables change that (adapted from
the shared lab's labcompute.py, counts only):

    UNISCHED_FAKE_DRIVER      the driver as in compute_driver (fake.FakeDriver)
    UNISCHED_FAKE_VCPUS       VCPU total (with PCPU/NUMA: the shared CPUs; 0 = no VCPU)
    UNISCHED_FAKE_MEMORY_MB   MEMORY_MB total (split over the NUMA cells)
    UNISCHED_FAKE_DISK_GB     DISK_GB total
    UNISCHED_FAKE_PCPUS       dedicated CPUs: PCPU inventory (ratio 1.0, reserved 0)
    UNISCHED_FAKE_NUMA_CELLS  host NUMA cells, one socket each (default 1)

When PCPUS or NUMA_CELLS is set the driver behaves like libvirt with
``[compute] cpu_shared_set`` / ``cpu_dedicated_set``: host NUMA cells in
get_available_resource, PCPU in update_provider_tree, supports_pcpus True, so
nova-compute's resource tracker pins the guest CPUs of dedicated servers at
claim time and GET /servers/{id}/topology shows them. Cell c is a contiguous
block of CPU ids: its share of the shared CPUs first, then its share of the
dedicated ones (shares as even as possible, remainders to the lower cells).
Each cell has no hyperthreads and 4 KiB pages only. Nothing is pinned for real.
"""
import importlib
import os
import sys

# nova.cmd.* first: importing it monkey-patches eventlet before anything else.
from nova.cmd import compute as nova_compute  # noqa: E402


def _env_int(name):
    v = os.environ.get(name)
    return int(v) if v else None


def _driver():
    name = os.environ.get('UNISCHED_FAKE_DRIVER') or 'fake.FakeDriver'
    module, _, cls = name.rpartition('.')
    return name, getattr(importlib.import_module('nova.virt.' + module), cls)


def _split(total, parts):
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _resize(driver):
    for attr, var in (('vcpus', 'UNISCHED_FAKE_VCPUS'), ('memory_mb', 'UNISCHED_FAKE_MEMORY_MB'),
                      ('local_gb', 'UNISCHED_FAKE_DISK_GB')):
        v = _env_int(var)
        if v is not None:
            setattr(driver, attr, v)


def _enable_numa(name, driver):
    pcpus = _env_int('UNISCHED_FAKE_PCPUS')
    ncells = _env_int('UNISCHED_FAKE_NUMA_CELLS')
    if pcpus is None and ncells is None:
        return
    pcpus, ncells = pcpus or 0, ncells or 1
    if pcpus < 0 or ncells < 1:
        raise SystemExit('fake_compute: UNISCHED_FAKE_PCPUS must be >= 0, UNISCHED_FAKE_NUMA_CELLS >= 1')
    orig_init_host = driver.init_host
    orig_resources = driver.get_available_resource
    orig_tree = driver.update_provider_tree

    def layout(self):
        state = getattr(self, '_unisched_numa', None)
        if state is not None:
            return state
        from oslo_log import log as logging
        from nova.conf import CONF
        from nova import objects
        from nova.virt import hardware

        cells, shared, dedicated, start = [], set(), set(), 0
        for s, p in zip(_split(self.vcpus, ncells), _split(pcpus, ncells)):
            cs, cd = set(range(start, start + s)), set(range(start + s, start + s + p))
            start += s + p
            if not cs | cd:
                raise SystemExit('fake_compute: more NUMA cells than CPUs')
            cells.append((cs | cd, cs, cd))
            shared |= cs
            dedicated |= cd
        # what a libvirt host with this layout has in nova.conf, so that
        # nova-compute's own pinning checks agree with the inventory
        CONF.set_override('cpu_shared_set', hardware.format_cpu_spec(shared) or None, group='compute')
        CONF.set_override('cpu_dedicated_set', hardware.format_cpu_spec(dedicated) or None, group='compute')
        self.vcpus = len(shared)
        self.resources.vcpus = len(shared)
        memory = _split(self.memory_mb, ncells)
        topo = []
        for cid, ((cpus, cs, cd), mem) in enumerate(zip(cells, memory)):
            topo.append(objects.NUMACell(
                id=cid, socket=cid, cpuset=cs, pcpuset=cd, memory=mem,
                cpu_usage=0, memory_usage=0, pinned_cpus=set(),
                siblings=[{c} for c in sorted(cpus)],
                mempages=[objects.NUMAPagesTopology(size_kb=4, total=mem * 256, used=0, reserved=0)],
                network_metadata=objects.NetworkMetadata(physnets=set(), tunneled=False)))
        state = {'json': objects.NUMATopology(cells=topo)._to_json(), 'pcpus': len(dedicated),
                 'sockets': ncells, 'cores': max(len(c[0]) for c in cells)}
        self._unisched_numa = state
        logging.getLogger('fake_compute').info(
            'fake_compute: %s: %d NUMA cell(s): %s; VCPU %d (cpu_shared_set=%s), PCPU %d (cpu_dedicated_set=%s)',
            name, ncells,
            '; '.join('cell %d: cpus %s shared %s dedicated %s memory_mb %d' % (
                i, hardware.format_cpu_spec(c) or '-', hardware.format_cpu_spec(s) or '-',
                hardware.format_cpu_spec(d) or '-', m) for i, ((c, s, d), m) in enumerate(zip(cells, memory))),
            len(shared), CONF.compute.cpu_shared_set, len(dedicated), CONF.compute.cpu_dedicated_set)
        return state

    def init_host(self, host):
        ret = orig_init_host(self, host)
        layout(self)
        return ret

    def get_available_resource(self, nodename):
        from oslo_serialization import jsonutils
        state = layout(self)
        res = orig_resources(self, nodename)
        if res:
            res['numa_topology'] = state['json']
            info = jsonutils.loads(res['cpu_info'])
            info['topology'] = {'cores': state['cores'], 'threads': 1, 'sockets': state['sockets']}
            res['cpu_info'] = jsonutils.dumps(info)
        return res

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        state = layout(self)
        orig_tree(self, provider_tree, nodename, allocations=allocations)
        inv = dict(provider_tree.data(nodename).inventory)
        if not self.vcpus:
            inv.pop('VCPU', None)  # placement refuses total 0
        if state['pcpus']:
            inv['PCPU'] = {'total': state['pcpus'], 'min_unit': 1, 'max_unit': state['pcpus'],
                           'step_size': 1, 'allocation_ratio': 1.0, 'reserved': 0}
        provider_tree.update_inventory(nodename, inv)

    driver.init_host = init_host
    driver.get_available_resource = get_available_resource
    driver.update_provider_tree = update_provider_tree
    driver.capabilities = dict(driver.capabilities, supports_pcpus=True)


def main():
    name, driver = _driver()
    _resize(driver)
    _enable_numa(name, driver)
    sys.argv[0] = 'nova-compute'
    return nova_compute.main()


if __name__ == '__main__':
    sys.exit(main())
