"""The request pipeline: authenticate, authorize, route, admit, call, meter, settle."""
