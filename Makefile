# The two commands of the README, plus the checks CI runs.
.PHONY: run test lint

## run: start Postgres checks, moto and the local runner (API on http://127.0.0.1:3000)
run:
	./scripts/run.sh

## test: start the same services, then run every test in the workspace
test:
	./scripts/test.sh

## lint: formatting and clippy exactly as CI checks them
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
