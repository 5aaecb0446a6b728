"""
Translation between the wire shapes (Chat Completions, Responses, Anthropic
Messages) through one neutral model: a codec per shape (pure).
"""
