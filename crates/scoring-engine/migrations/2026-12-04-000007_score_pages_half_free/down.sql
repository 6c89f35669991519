ALTER TABLE scores SET (fillfactor = 60);
