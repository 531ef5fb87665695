DROP TABLE IF EXISTS imagesec_upgrades;
DROP TABLE IF EXISTS imagesec_advice;
