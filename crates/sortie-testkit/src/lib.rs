//! sortie-testkit (placeholder; being written).
