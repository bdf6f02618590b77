"""The datasets: downloads, checks and the prepared-dataset file of each track."""
