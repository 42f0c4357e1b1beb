package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultUserID owns the jobs and variables of a submission or call that
// names no user: a standalone user's variables work without setup.
const DefaultUserID = "standalone"

// Variable is one of a user's variables, as the backend's variables route
// answers it. Values are strings and may be secrets.
type Variable struct {
	Key       string    `json:"key"`
	Value     string    `json:"value"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Variable returns the user's variable key; errNotFound when it is unset.
func (s *Store) Variable(ctx context.Context, userID, key string) (Variable, error) {
	v := Variable{Key: key}
	var updated int64
	err := s.db.QueryRowContext(ctx, `SELECT value, updated_at FROM variables WHERE user_id = ? AND key = ?`,
		userID, key).Scan(&v.Value, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return v, errNotFound
	}
	if err != nil {
		return v, fmt.Errorf("get variable: %w", err)
	}
	v.UpdatedAt = fromMillis(updated)
	return v, nil
}

// SetVariable creates or replaces the user's variable key.
func (s *Store) SetVariable(ctx context.Context, userID, key, value string) (Variable, error) {
	return s.setVariable(ctx, userID, key, value, time.Now())
}

func (s *Store) setVariable(ctx context.Context, userID, key, value string, now time.Time) (Variable, error) {
	// PostgreSQL refuses such text; the real route answers 500.
	if !storable(userID) || !storable(key) || !storable(value) {
		return Variable{}, errInvalidText
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO variables (user_id, key, value, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		userID, key, value, now.UnixMilli(), now.UnixMilli()); err != nil {
		return Variable{}, fmt.Errorf("set variable: %w", err)
	}
	return Variable{Key: key, Value: value, UpdatedAt: fromMillis(now.UnixMilli())}, nil
}

// Variables returns all the user's variables, by key.
func (s *Store) Variables(ctx context.Context, userID string) ([]Variable, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, value, updated_at FROM variables WHERE user_id = ? ORDER BY key`, userID)
	if err != nil {
		return nil, fmt.Errorf("list variables: %w", err)
	}
	defer rows.Close()
	out := []Variable{}
	for rows.Next() {
		var v Variable
		var updated int64
		if err := rows.Scan(&v.Key, &v.Value, &updated); err != nil {
			return nil, fmt.Errorf("list variables: %w", err)
		}
		v.UpdatedAt = fromMillis(updated)
		out = append(out, v)
	}
	return out, rows.Err()
}

// storable is text PostgreSQL accepts: valid UTF-8 without NUL.
func storable(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }
