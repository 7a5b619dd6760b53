"""sync_core"""
