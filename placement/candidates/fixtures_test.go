package candidates

import (
	"fmt"
	"testing"
)

var standardClasses = []string{
	"VCPU", "MEMORY_MB", "DISK_GB", "PCI_DEVICE", "SRIOV_NET_VF", "NUMA_SOCKET", "NUMA_CORE",
	"NUMA_THREAD", "NUMA_MEMORY_MB", "IPV4_ADDRESS", "VGPU", "VGPU_DISPLAY_HEAD",
	"NET_BW_EGR_KILOBIT_PER_SEC", "NET_BW_IGR_KILOBIT_PER_SEC", "PCPU", "MEM_ENCRYPTION_CONTEXT",
	"FPGA", "PGPU", "NET_PACKET_RATE_KILOPACKET_PER_SEC", "NET_PACKET_RATE_EGR_KILOPACKET_PER_SEC",
	"NET_PACKET_RATE_IGR_KILOPACKET_PER_SEC",
}

// A few standard traits, in os-traits order, so trait ids sort standard
// before custom like a real deployment.
var standardTraits = []string{
	"COMPUTE_VOLUME_MULTI_ATTACH", "HW_CPU_X86_AVX", "HW_CPU_X86_AVX2", "HW_CPU_X86_MMX",
	"HW_CPU_X86_SSE", "HW_CPU_X86_SSE2", "HW_CPU_X86_SSE3", "HW_GPU_API_DXVA", "HW_NIC_ACCEL_TLS",
	"HW_NIC_DCB_PFC", "HW_NUMA_ROOT", "MISC_SHARES_VIA_AGGREGATE",
}

// fixture builds snapshots the way placement's gabbit fixtures build their
// databases (fixtures/gabbits.py): inventories default to max_unit = total.
type fixture struct {
	d     Data
	uuids map[string]string
	idx   map[string]int
}

func newFixture() *fixture {
	f := &fixture{uuids: map[string]string{}, idx: map[string]int{}}
	f.d.Classes = append([]string(nil), standardClasses...)
	f.d.Traits = append([]string(nil), standardTraits...)
	return f
}

func (f *fixture) uuid(name string) string {
	if u, ok := f.uuids[name]; ok {
		return u
	}
	u := fmt.Sprintf("%08x-0000-4000-8000-%012x", len(f.uuids)+1, len(f.uuids)+1)
	f.uuids[name] = u
	return u
}

// rp creates a provider; aggregates are named (agg names get uuids too).
func (f *fixture) rp(name, parent string, aggs ...string) {
	pd := ProviderData{UUID: f.uuid(name), Name: name}
	if parent != "" {
		pd.ParentUUID = f.uuid(parent)
	}
	for _, a := range aggs {
		pd.Aggregates = append(pd.Aggregates, f.uuid(a))
	}
	f.idx[name] = len(f.d.Providers)
	f.d.Providers = append(f.d.Providers, pd)
}

func (f *fixture) setAggs(name string, aggs ...string) {
	p := &f.d.Providers[f.idx[name]]
	p.Aggregates = nil
	for _, a := range aggs {
		p.Aggregates = append(p.Aggregates, f.uuid(a))
	}
}

type invOpt func(*InventoryData)

func reserved(n int64) invOpt     { return func(i *InventoryData) { i.Reserved = n } }
func ratio(r float64) invOpt      { return func(i *InventoryData) { i.AllocationRatio = r } }
func minUnit(n int64) invOpt      { return func(i *InventoryData) { i.MinUnit = n } }
func maxUnit(n int64) invOpt      { return func(i *InventoryData) { i.MaxUnit = n } }
func stepSize(n int64) invOpt     { return func(i *InventoryData) { i.StepSize = n } }
func (f *fixture) class(c string) { f.ensure(&f.d.Classes, c) }

func (f *fixture) ensure(list *[]string, name string) {
	for _, x := range *list {
		if x == name {
			return
		}
	}
	*list = append(*list, name)
}

func (f *fixture) inv(name, class string, total int64, opts ...invOpt) {
	f.class(class)
	inv := InventoryData{Class: class, Total: total, MinUnit: 1, MaxUnit: total, StepSize: 1, AllocationRatio: 1}
	for _, o := range opts {
		o(&inv)
	}
	p := &f.d.Providers[f.idx[name]]
	p.Inventories = append(p.Inventories, inv)
}

func (f *fixture) traits(name string, traits ...string) {
	p := &f.d.Providers[f.idx[name]]
	for _, t := range traits {
		f.ensure(&f.d.Traits, t)
		p.Traits = append(p.Traits, t)
	}
}

func (f *fixture) alloc(name, class string, used int64) {
	p := &f.d.Providers[f.idx[name]]
	for i := range p.Inventories {
		if p.Inventories[i].Class == class {
			p.Inventories[i].Used += used
		}
	}
}

func (f *fixture) snapshot(t testing.TB) *Snapshot {
	t.Helper()
	s, err := NewSnapshot(f.d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sharedStorageFixture() *fixture {
	f := newFixture()
	f.rp("cn1", "", "agg")
	f.rp("cn2", "", "agg")
	f.rp("ss", "", "agg")
	f.rp("ss2", "", "agg")
	f.rp("numa1_1", "cn1")
	f.rp("numa1_2", "cn1")
	f.rp("numa2_1", "cn2")
	f.rp("numa2_2", "cn2")
	f.rp("pf1_1", "numa1_1")
	f.rp("pf1_2", "numa1_2")
	f.rp("pf2_1", "numa2_1")
	f.rp("pf2_2", "numa2_2")
	for _, cn := range []string{"cn1", "cn2"} {
		f.inv(cn, "VCPU", 24, ratio(16))
		f.inv(cn, "MEMORY_MB", 128*1024, ratio(1.5))
	}
	f.traits("cn1", "HW_CPU_X86_SSE", "HW_CPU_X86_SSE2")
	f.inv("cn2", "DISK_GB", 2000, reserved(100))
	for _, ss := range []string{"ss", "ss2"} {
		f.inv(ss, "DISK_GB", 2000, reserved(100))
		f.traits(ss, "MISC_SHARES_VIA_AGGREGATE")
	}
	for _, pf := range []string{"pf1_1", "pf1_2", "pf2_1", "pf2_2"} {
		f.inv(pf, "SRIOV_NET_VF", 8)
	}
	return f
}

func numaAggregateFixture() *fixture {
	f := newFixture()
	f.rp("cn1", "", "aggA")
	f.rp("cn2", "", "aggA", "aggB")
	f.rp("ss1", "", "aggA")
	f.rp("ss2", "", "aggC")
	f.rp("numa1_1", "cn1", "aggC")
	f.rp("numa1_2", "cn1")
	f.rp("numa2_1", "cn2")
	f.rp("numa2_2", "cn2")
	for _, n := range []string{"numa1_1", "numa1_2", "numa2_1", "numa2_2"} {
		f.inv(n, "VCPU", 24, ratio(16))
	}
	for _, ss := range []string{"ss1", "ss2"} {
		f.inv(ss, "DISK_GB", 2000, reserved(100))
		f.traits(ss, "MISC_SHARES_VIA_AGGREGATE")
	}
	return f
}

func numaNetworkFixture(deep bool) *fixture {
	f := newFixture()
	if deep {
		f.rp("gp1", "")
		f.rp("p1", "gp1")
		f.rp("p2", "gp1")
		f.rp("cn1", "p1")
		f.rp("cn2", "p2")
	}
	f.rp("ss1", "", "aggA")
	f.traits("ss1", "MISC_SHARES_VIA_AGGREGATE")
	f.inv("ss1", "DISK_GB", 2000)
	if !deep {
		f.rp("cn1", "", "aggA")
	}
	f.setAggs("cn1", "aggA")
	f.traits("cn1", "COMPUTE_VOLUME_MULTI_ATTACH")
	for _, n := range []string{"numa0", "numa1"} {
		f.rp(n, "cn1")
		f.traits(n, "HW_NUMA_ROOT")
		if n == "numa1" {
			f.traits(n, "CUSTOM_FOO")
		}
		f.inv(n, "VCPU", 4)
	}
	f.inv("numa0", "MEMORY_MB", 2048, minUnit(512), stepSize(256))
	f.inv("numa1", "MEMORY_MB", 2048, minUnit(256), maxUnit(1024))
	f.alloc("numa0", "VCPU", 2)
	f.rp("fpga0", "numa0")
	f.inv("fpga0", "CUSTOM_FPGA", 1)
	f.rp("pgpu0", "numa0")
	f.inv("pgpu0", "VGPU", 8)
	for _, n := range []string{"fpga1_0", "fpga1_1"} {
		f.rp(n, "numa1")
		f.inv(n, "CUSTOM_FPGA", 1)
	}
	f.rp("sriov_agent", "cn1")
	f.traits("sriov_agent", "CUSTOM_VNIC_TYPE_DIRECT")
	f.rp("esn1", "sriov_agent")
	f.traits("esn1", "CUSTOM_PHYSNET1")
	f.inv("esn1", "NET_BW_EGR_KILOBIT_PER_SEC", 10000)
	f.rp("esn2", "sriov_agent")
	f.traits("esn2", "CUSTOM_PHYSNET2")
	f.inv("esn2", "NET_BW_EGR_KILOBIT_PER_SEC", 20000)
	f.rp("ovs_agent", "cn1")
	f.traits("ovs_agent", "CUSTOM_VNIC_TYPE_NORMAL")
	f.rp("br_int", "ovs_agent")
	f.traits("br_int", "CUSTOM_PHYSNET0")
	f.inv("br_int", "NET_BW_EGR_KILOBIT_PER_SEC", 1000)
	if !deep {
		f.rp("cn2", "")
	}
	f.setAggs("cn2", "aggA")
	f.inv("cn2", "VCPU", 8)
	f.alloc("cn2", "VCPU", 3)
	f.inv("cn2", "MEMORY_MB", 2048, minUnit(1024), stepSize(128))
	f.inv("cn2", "DISK_GB", 1000)
	f.traits("cn2", "CUSTOM_FOO")
	for _, n := range []string{"nic1", "nic2", "nic3"} {
		f.rp(n, "cn2")
		f.traits(n, "CUSTOM_HW_NIC_ROOT")
	}
	for i, n := range []string{"pf1_1", "pf1_2"} {
		f.rp(n, "nic1")
		f.traits(n, fmt.Sprintf("CUSTOM_PHYSNET%d", i+1))
		f.inv(n, "CUSTOM_VF", 4)
	}
	for i, n := range []string{"pf2_1", "pf2_2", "pf2_3", "pf2_4"} {
		f.rp(n, "nic2")
		f.traits(n, fmt.Sprintf("CUSTOM_PHYSNET%d", i%2+1))
		f.inv(n, "CUSTOM_VF", 2)
	}
	f.rp("pf3_1", "nic3")
	f.traits("pf3_1", "CUSTOM_PHYSNET1")
	f.inv("pf3_1", "CUSTOM_VF", 8)
	return f
}

func nonSharedStorageFixture() *fixture {
	f := newFixture()
	for _, cn := range []string{"cn1", "cn2", "cn3"} {
		f.rp(cn, "")
		f.inv(cn, "VCPU", 24)
		f.inv(cn, "MEMORY_MB", 128*1024)
		f.inv(cn, "DISK_GB", 2000)
	}
	f.uuid("aggA")
	f.uuid("aggB")
	f.uuid("aggC")
	return f
}

func granularFixture() *fixture {
	f := newFixture()
	f.class("CUSTOM_NET_MBPS")
	f.rp("cn_left", "", "aggA")
	f.inv("cn_left", "VCPU", 8)
	f.inv("cn_left", "MEMORY_MB", 4096)
	f.inv("cn_left", "DISK_GB", 500)
	f.inv("cn_left", "VGPU", 8)
	f.inv("cn_left", "SRIOV_NET_VF", 8)
	f.inv("cn_left", "CUSTOM_NET_MBPS", 4000)
	f.traits("cn_left", "HW_CPU_X86_AVX", "HW_CPU_X86_AVX2", "HW_GPU_API_DXVA", "HW_NIC_DCB_PFC", "CUSTOM_FOO")
	f.rp("cn_middle", "", "aggA", "aggB")
	f.inv("cn_middle", "VCPU", 8)
	f.inv("cn_middle", "MEMORY_MB", 4096)
	f.inv("cn_middle", "SRIOV_NET_VF", 8)
	f.inv("cn_middle", "CUSTOM_NET_MBPS", 4000)
	f.traits("cn_middle", "HW_CPU_X86_AVX", "HW_CPU_X86_AVX2", "HW_CPU_X86_SSE", "HW_NIC_ACCEL_TLS")
	f.rp("cn_right", "", "aggB", "aggC")
	f.inv("cn_right", "VCPU", 8)
	f.inv("cn_right", "MEMORY_MB", 4096)
	f.inv("cn_right", "DISK_GB", 500)
	f.inv("cn_right", "VGPU", 8, maxUnit(2))
	f.traits("cn_right", "HW_CPU_X86_MMX", "HW_GPU_API_DXVA", "CUSTOM_DISK_SSD")
	f.rp("shr_disk_1", "", "aggA")
	f.inv("shr_disk_1", "DISK_GB", 1000)
	f.traits("shr_disk_1", "MISC_SHARES_VIA_AGGREGATE", "CUSTOM_DISK_SSD")
	f.rp("shr_disk_2", "", "aggA", "aggB")
	f.inv("shr_disk_2", "DISK_GB", 1000)
	f.traits("shr_disk_2", "MISC_SHARES_VIA_AGGREGATE")
	f.rp("shr_net", "", "aggC")
	f.inv("shr_net", "SRIOV_NET_VF", 16)
	f.inv("shr_net", "CUSTOM_NET_MBPS", 40000)
	f.traits("shr_net", "MISC_SHARES_VIA_AGGREGATE")
	return f
}

func neutronQoSFixture() *fixture {
	f := newFixture()
	physnets := map[int][]string{0: {"CUSTOM_PHYSNET_OTHER"}, 1: {"CUSTOM_PHYSNET_MSN_S1"}, 2: {"CUSTOM_PHYSNET_MSN_S2"}}
	vnic := []string{"CUSTOM_VNIC_TYPE_DIRECT", "CUSTOM_VNIC_TYPE_DIRECT_PHYSICAL", "CUSTOM_VNIC_TYPE_MACVTAP"}
	for i := 0; i < 4; i++ {
		c := fmt.Sprintf("compute%d", i)
		f.rp(c, "")
		f.inv(c, "VCPU", 8)
		f.inv(c, "MEMORY_MB", 4096)
		f.inv(c, "DISK_GB", 500)
		f.rp(c+":ovs_agent", c)
		f.inv(c+":ovs_agent", "NET_PACKET_RATE_KILOPACKET_PER_SEC", 1000)
		f.traits(c+":ovs_agent", "CUSTOM_VNIC_TYPE_NORMAL")
		f.rp(c+":sriov_agent", c)
		f.traits(c+":sriov_agent", vnic...)
		if i < 3 {
			f.rp(c+":br_ex", c+":ovs_agent")
			f.inv(c+":br_ex", "NET_BW_EGR_KILOBIT_PER_SEC", 5000)
			f.inv(c+":br_ex", "NET_BW_IGR_KILOBIT_PER_SEC", 5000)
			f.traits(c+":br_ex", append([]string{"CUSTOM_VNIC_TYPE_NORMAL"}, physnets[i]...)...)
			f.rp(c+":pf0", c+":sriov_agent")
			f.inv(c+":pf0", "NET_BW_EGR_KILOBIT_PER_SEC", 10000)
			f.inv(c+":pf0", "NET_BW_IGR_KILOBIT_PER_SEC", 10000)
			f.traits(c+":pf0", append(append([]string(nil), vnic...), physnets[i]...)...)
			continue
		}
		for j, br := range []string{":br_ex", ":br_ex2"} {
			f.rp(c+br, c+":ovs_agent")
			f.inv(c+br, "NET_BW_EGR_KILOBIT_PER_SEC", 1000)
			f.inv(c+br, "NET_BW_IGR_KILOBIT_PER_SEC", 1000)
			f.traits(c+br, "CUSTOM_VNIC_TYPE_NORMAL", physnets[j+1][0])
		}
		for j, pf := range []string{":pf0", ":pf1"} {
			f.rp(c+pf, c+":sriov_agent")
			f.inv(c+pf, "NET_BW_EGR_KILOBIT_PER_SEC", 1000)
			f.inv(c+pf, "NET_BW_IGR_KILOBIT_PER_SEC", 1000)
			f.traits(c+pf, append(append([]string(nil), vnic...), physnets[j+1][0])...)
		}
	}
	return f
}
