-- How each file was read (format, target, explicit mapping as JSON): with the sha256,
-- the identity of a load, so one file can be read again another way. And the name it
-- was given when that was a symlink (path holds the file it resolved to).
ALTER TABLE evidence ADD COLUMN IF NOT EXISTS read_as VARCHAR;
ALTER TABLE evidence ADD COLUMN IF NOT EXISTS link VARCHAR
