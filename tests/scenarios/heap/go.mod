module gotrace.example/heap

go 1.17
