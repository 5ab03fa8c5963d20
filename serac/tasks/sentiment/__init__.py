"""ConvSent-style sentiment editing: "Topic: X -> Sentiment: positive/negative" edits of a chat model."""
