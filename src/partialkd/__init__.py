"""partialkd: partial knowledge-distillation targets (Tang et al., arXiv 2002.03532) and the workflow's steps."""
