# Fjord developer commands. `make test` is the whole suite (what CI runs).
.PHONY: run test build

run:
	cargo run --release --bin fjord

build:
	cargo build --release --bins

test:
	./tools/test.sh
