//! Prints every Fjord CRD as one multi-document YAML stream; `crds/` holds its output.

fn main() {
    print!("{}", fjord_operator::crd::yaml());
}
