"""The networks: the stacked MLPs, the vision networks and the LSTM language model."""
