module gotrace.example/httpserver

go 1.17
