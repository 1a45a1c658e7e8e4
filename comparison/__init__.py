"""Comparison: run models side by side, score their answers, explain a winner, benchmark and rate them."""
