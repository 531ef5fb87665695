package migrations

import (
	"errors"
	"fmt"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // registers pgx5://
	"github.com/golang-migrate/migrate/v4/source/iofs"
)

// open prepares a migrator for a postgres:// URL. golang-migrate takes
// the schema lock (an advisory lock) itself, so concurrent replicas
// starting together apply each migration once.
func open(databaseURL string) (*migrate.Migrate, error) {
	src, err := iofs.New(FS, ".")
	if err != nil {
		return nil, fmt.Errorf("reading embedded migrations: %w", err)
	}
	url := databaseURL
	for _, prefix := range []string{"postgresql://", "postgres://"} {
		if strings.HasPrefix(url, prefix) {
			url = "pgx5://" + strings.TrimPrefix(url, prefix)
			break
		}
	}
	if !strings.HasPrefix(url, "pgx5://") {
		return nil, fmt.Errorf("database url must be a postgres:// URL")
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, url)
	if err != nil {
		return nil, fmt.Errorf("connecting for migrations: %w", err)
	}
	return m, nil
}

// Up applies every migration not yet applied, after checking that the
// database is one golang-migrate can move up correctly (check.go).
func Up(databaseURL string) error {
	unlock, err := lock(databaseURL)
	if err != nil {
		return err
	}
	defer unlock()
	if err := checkBeforeUp(databaseURL); err != nil {
		return err
	}
	m, err := open(databaseURL)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("applying migrations: %w", err)
	}
	return nil
}

// Down reverts every migration. Tests use it to walk the chain.
func Down(databaseURL string) error {
	m, err := open(databaseURL)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Down(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("reverting migrations: %w", err)
	}
	return nil
}

// Version reports the applied version and whether the last one failed half-way.
func Version(databaseURL string) (uint, bool, error) {
	m, err := open(databaseURL)
	if err != nil {
		return 0, false, err
	}
	defer m.Close()
	v, dirty, err := m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false, nil
	}
	return v, dirty, err
}
