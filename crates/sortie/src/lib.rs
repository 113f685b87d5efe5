//! sortie (being written).
