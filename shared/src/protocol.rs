//! Edge ⇄ worker wire protocol (placeholder; the framed bincode codec lands here).
