//! sortie-inventory (placeholder; being written).
