//! Intentionally empty: the tests live in `e2e/`, one integration binary.
