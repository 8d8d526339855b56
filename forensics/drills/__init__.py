"""Practice incidents with answer keys: the generator, its text pools and the writers
that put canonical events into a vendor's shape.
"""
