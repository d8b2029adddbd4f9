# sitrep's tasks. `just` lists them.

default:
    @just --list --unsorted

# Start everything with the simulator (local Postgres/NATS if none answer)
[group('run')]
demo *ARGS:
    scripts/demo {{ARGS}}

# Run ingest, projections and the dashboard against the configured Postgres and NATS
[group('run')]
run:
    cargo run --bin sitrep -- run

# Publish realistic collector traffic
[group('run')]
simulate *ARGS:
    cargo run --bin sitrep -- simulate {{ARGS}}

# Create the database if needed and apply migrations
[group('run')]
migrate:
    cargo run --bin sitrep -- migrate

# The whole test suite, as CI runs it
[group('test')]
test *ARGS:
    scripts/test {{ARGS}}

# Unit tests only (no services needed)
[group('test')]
test-unit:
    cargo test --workspace --lib --bins

# End-to-end tests only (real Postgres and NATS); TEST_LOG=1 shows the app's logs
[group('test')]
test-e2e *ARGS:
    cargo test -p sitrep-tests --test e2e {{ARGS}}

# The fault suite alone: kill -9, Postgres and NATS restarts, a 3-node cluster, scale-out, notifications
[group('test')]
test-faults *ARGS:
    scripts/test-faults {{ARGS}}

# Measure on this machine (release build, own database) and print BENCH lines
[group('bench')]
bench *ARGS:
    scripts/bench {{ARGS}}

# 10 minutes of steady load with 32 dashboard clients: errors, lag, RSS over time (not in CI)
[group('bench')]
soak *ARGS:
    scripts/soak {{ARGS}}

# Format check and clippy
[group('lint')]
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Stop the project-local Postgres and NATS that demo or the tests started
[group('services')]
services-down:
    .sitrep/stop-services
