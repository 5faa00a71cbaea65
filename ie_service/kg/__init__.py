"""Knowledge-graph construction: batch extraction client, entity de-duplication, exports."""
