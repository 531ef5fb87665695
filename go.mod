module github.com/unisched/unisched

go 1.26.8
