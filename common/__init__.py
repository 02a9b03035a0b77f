"""Shared harness for the imdb-peft study: config, data, models, training, records, reports."""
