"""Dead letters: readers park what they cannot process (`parking`); operators retry or
drop it (`actions`)."""
