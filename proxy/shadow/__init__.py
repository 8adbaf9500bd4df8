"""Shadow traffic: copies of requests the stable release served, sent to the candidate and
compared with the stable answer (``proxy.shadow.step``, ``proxy.shadow.sender``)."""
