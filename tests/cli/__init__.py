"""Tests of the command line as a whole: start-up cost, output."""
