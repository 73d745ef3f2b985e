"""The throwaway directory and sample organisation the demo (and the tests) run against."""
