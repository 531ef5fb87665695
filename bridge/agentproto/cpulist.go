package agentproto

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

// MaxCPUID is the largest CPU id a host may report (Linux's NR_CPUS tops
// out at 8192).
const MaxCPUID = 8191

// ParseCPUs parses a CPU list of the wire format (Linux list form),
// refusing ids past MaxCPUID before the list is expanded: "0-99999999"
// would otherwise become a set of a hundred million CPUs. Both ends of the
// protocol parse with it, so they agree on what a valid list is.
func ParseCPUs(list string) (cpuset.CPUSet, error) {
	for _, part := range strings.Split(list, ",") {
		for _, num := range strings.Split(part, "-") {
			n, err := strconv.Atoi(strings.TrimSpace(num))
			if (err == nil && n > MaxCPUID) || errors.Is(err, strconv.ErrRange) {
				return cpuset.CPUSet{}, fmt.Errorf("CPU %s is past the largest CPU id, %d", num, MaxCPUID)
			}
		}
	}
	return cpuset.Parse(list)
}
