package metrics

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers each collector on reg and reports every failure
// (a name taken twice, a help text differing) at once, wrapped with what
// was being registered. It is the one registration shape of the packages
// that export metrics on the registry serve passes them: they build their
// vectors, call Register, then pre-create the label values they know so
// that a series reads 0 before its first event rather than being absent.
func Register(reg prometheus.Registerer, what string, cs ...prometheus.Collector) error {
	var errs []error
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("registering %s: %w", what, err)
	}
	return nil
}

// Touch creates the series of vec for each label value (a one-label
// vector), so that they are exported at zero from the start.
func Touch[V interface {
	WithLabelValues(...string) T
}, T any](vec V, values ...string) {
	for _, v := range values {
		vec.WithLabelValues(v)
	}
}
