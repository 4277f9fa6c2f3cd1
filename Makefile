# The two commands of the README, plus the checks CI runs.
.PHONY: run test lint infra-check soak soak-long bench fuzz

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

## infra-check: offline checks of the AWS SAM deployment (cfn-lint and its canary, serverless rules, sam validate, sam build arm64)
infra-check:
	./scripts/validate-infra.sh

## soak: the chaos soak's short form (1 650 orders, every fault kind, a 60 s exchange outage; runs in CI)
soak:
	./scripts/soak.sh short

## soak-long: the long form (12 000 orders, a 10-minute exchange outage; on demand)
soak-long:
	./scripts/soak.sh long

## fuzz: the request parser under cargo-fuzz for FUZZ_SECONDS (default 60; runs in CI)
fuzz:
	./scripts/fuzz.sh $(or $(FUZZ_SECONDS),60)

## bench: the benchmarks of docs/BENCHMARKS.md (release build; on demand)
bench:
	./scripts/bench.sh
