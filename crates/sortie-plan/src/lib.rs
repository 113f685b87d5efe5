//! sortie-plan (placeholder; being written).
