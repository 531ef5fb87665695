package config

import (
	"fmt"

	"github.com/spf13/viper"
)

// readFile reads the config file into v by its extension: .conf and .ini
// as oslo-style INI (ini.go), anything else (.yaml, .yml, .json, .toml) by
// viper's own codecs.
func readFile(v *viper.Viper, path string) error {
	if isINI(path) {
		m, err := readINI(path)
		if err != nil {
			return err
		}
		return v.MergeConfigMap(m)
	}
	v.SetConfigFile(path)
	if err := v.ReadInConfig(); err != nil {
		return fmt.Errorf("reading config %s: %w", path, err)
	}
	return nil
}
