//! sortie-knownhosts (placeholder; being written).
