package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/cronium/orchestrator/secret"
)

// Key is one setting. Its names in every source derive from Path:
// "jobs.max_concurrent" is CRONIUM_JOBS_MAX_CONCURRENT and
// --jobs-max-concurrent. Aliases are extra environment names (read only
// when the main one is unset).
type Key struct {
	Path    string
	Env     string
	Aliases []string
	Flag    string
	Doc     string
	Secret  bool
	index   []int
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	byteSizeType = reflect.TypeOf(ByteSize(0))
	secretType   = reflect.TypeOf(secret.Value(""))
)

// Keys lists every setting, in the order the Config struct declares them.
func Keys() []Key {
	var keys []Key
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := f.Tag.Get("yaml")
			if name == "" || name == "-" {
				continue
			}
			path := name
			if prefix != "" {
				path = prefix + "." + name
			}
			idx := append(append([]int(nil), index...), i)
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, path, idx)
				continue
			}
			k := Key{
				Path:   path,
				Env:    "CRONIUM_" + strings.ToUpper(strings.NewReplacer(".", "_").Replace(path)),
				Flag:   strings.NewReplacer(".", "-", "_", "-").Replace(path),
				Doc:    f.Tag.Get("doc"),
				Secret: f.Type == secretType,
				index:  idx,
			}
			if alias := f.Tag.Get("env"); alias != "" {
				k.Aliases = strings.Split(alias, ",")
			}
			keys = append(keys, k)
		}
	}
	walk(reflect.TypeOf(Config{}), "", nil)
	return keys
}

// Set parses raw for this key's type and stores it in cfg.
func (k Key) Set(cfg *Config, raw string) error {
	v := reflect.ValueOf(cfg).Elem().FieldByIndex(k.index)
	raw = strings.TrimSpace(raw)
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("want a duration such as 500ms, 30s or 1h, got %q", raw)
		}
		v.SetInt(int64(d))
	case v.Type() == byteSizeType:
		b, err := ParseByteSize(raw)
		if err != nil {
			return err
		}
		v.SetInt(int64(b))
	case v.Kind() == reflect.String:
		v.SetString(raw)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", raw)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("want a whole number, got %q", raw)
		}
		v.SetInt(n)
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("want a number, got %q", raw)
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("unsupported setting type %s", v.Type())
	}
	return nil
}

// Get renders the key's current value in cfg the way Set reads it.
// Secrets render as "[REDACTED]" when set.
func (k Key) Get(cfg *Config) string {
	v := reflect.ValueOf(cfg).Elem().FieldByIndex(k.index)
	switch {
	case v.Type() == secretType:
		if v.String() == "" {
			return ""
		}
		return "[REDACTED]"
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Type() == byteSizeType:
		return ByteSize(v.Int()).String()
	}
	return fmt.Sprint(v.Interface())
}
