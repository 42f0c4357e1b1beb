// Package chaos holds no code: its test (`make chaos`, and a short run in
// `make test`) runs hundreds of mixed jobs through a real orchestrator
// process while faults are injected at random — crashed and killed actors,
// killed job containers, killed and frozen SSH connections, kill -9 of the
// orchestrator, a backend that fails, stalls or slows its answers — and
// then checks what must survive all of it.
package chaos
